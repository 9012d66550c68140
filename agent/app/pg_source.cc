#include "agent/app/pg_source.h"

#include <utility>

#include "agent/pg/collector.h"

namespace lockwatch::app {
namespace {

class PgSnapshotSource : public SnapshotSource {
 public:
  explicit PgSnapshotSource(std::string dsn) : collector_(std::move(dsn)) {}

  core::Status Connect() override { return collector_.Connect(); }
  core::Result<core::Snapshot> Poll() override { return collector_.Poll(); }
  std::string redacted_dsn() const override { return collector_.redacted_dsn(); }

 private:
  pg::Collector collector_;
};

}  // namespace

std::unique_ptr<SnapshotSource> MakePgSnapshotSource(const std::string& dsn) {
  return std::make_unique<PgSnapshotSource>(dsn);
}

}  // namespace lockwatch::app
