// `lockwatch report` in a real browser: headless Chromium (Debian package `chromium`) loads the page from a
// file:// URL with networking features off. The page's script must run without error (it marks <body>
// data-rendered="ok", visible in the dumped DOM), the console must stay silent (a CSP violation or a script
// error would print there), and a screenshot must show the chart's colours. Chromium missing is a failure.

#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <zlib.h>

#include "agent/forensics/incident_timeline.h"
#include "agent/forensics/report_command.h"
#include "agent/forensics/report_html.h"

#include "tests/forensics/dump_test_util.h"
#include "tests/forensics/incident_scenarios.h"

namespace lockwatch::forensics {
namespace {

using test::kT0;
using test::RootSpec;
using test::RootState;
using testing::Sec;

constexpr const char* kChromium = "/usr/bin/chromium";
constexpr int kTimeoutSeconds = 90;

struct Browser {
  int exit_code = -1;
  std::string out;
  std::string log;
};

// Runs headless Chromium on `html` with `mode` ("--dump-dom" or "--screenshot=<png>"), bounded in time.
Browser RunChromium(const test::TempDir& dir, const std::string& html, const std::string& mode) {
  static int run = 0;
  const std::string profile = dir.File("profile-" + std::to_string(++run));
  const std::string out = dir.File("stdout-" + std::to_string(run));
  const std::string log = dir.File("stderr-" + std::to_string(run));
  const std::string command = "HOME='" + dir.path() + "' timeout -k 5 " + std::to_string(kTimeoutSeconds) +
                              " " + kChromium +
                              " --headless --no-sandbox --disable-gpu --disable-quic --no-first-run"
                              " --disable-background-networking --disable-component-update --disable-sync"
                              " --disable-extensions --disable-dev-shm-usage --hide-scrollbars"
                              " --enable-logging=stderr --v=0 --user-data-dir='" +
                              profile + "' --window-size=1280,900 " + mode + " 'file://" + html + "' >'" +
                              out + "' 2>'" + log + "' </dev/null";
  Browser b;
  const int status = std::system(command.c_str());
  b.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  b.out = test::ReadBytes(out);
  b.log = test::ReadBytes(log);
  return b;
}

// Console lines Chromium logged for the page ("CONSOLE(...)", "Uncaught ...", CSP refusals).
std::vector<std::string> ConsoleLines(const std::string& log) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < log.size()) {
    size_t end = log.find('\n', start);
    if (end == std::string::npos) end = log.size();
    const std::string line = log.substr(start, end - start);
    if (line.find("CONSOLE") != std::string::npos || line.find("Uncaught") != std::string::npos ||
        line.find("Refused to") != std::string::npos) {
      lines.push_back(line);
    }
    start = end + 1;
  }
  return lines;
}

uint32_t Be32(const std::string& s, size_t at) {
  return (static_cast<uint32_t>(static_cast<unsigned char>(s[at])) << 24) |
         (static_cast<uint32_t>(static_cast<unsigned char>(s[at + 1])) << 16) |
         (static_cast<uint32_t>(static_cast<unsigned char>(s[at + 2])) << 8) |
         static_cast<uint32_t>(static_cast<unsigned char>(s[at + 3]));
}

struct Image {
  uint32_t width = 0;
  uint32_t height = 0;
  std::vector<uint8_t> rgb;  // 3 bytes per pixel
};

// Decodes an 8-bit, non-interlaced RGB or RGBA PNG (what Chromium writes); nullopt for anything else.
std::optional<Image> DecodePng(const std::string& png) {
  if (png.size() < 8 || png.compare(0, 8, "\x89PNG\r\n\x1a\n") != 0) return std::nullopt;
  Image img;
  int channels = 0;
  std::string idat;
  for (size_t at = 8; at + 12 <= png.size();) {
    const uint32_t len = Be32(png, at);
    const std::string type = png.substr(at + 4, 4);
    if (at + 12 + len > png.size()) return std::nullopt;
    const std::string data = png.substr(at + 8, len);
    if (type == "IHDR") {
      img.width = Be32(data, 0);
      img.height = Be32(data, 4);
      const int depth = static_cast<unsigned char>(data[8]);
      const int color = static_cast<unsigned char>(data[9]);
      if (depth != 8 || static_cast<unsigned char>(data[12]) != 0) return std::nullopt;
      channels = color == 2 ? 3 : color == 6 ? 4 : 0;
      if (channels == 0) return std::nullopt;
    } else if (type == "IDAT") {
      idat += data;
    }
    at += 12 + len;
  }
  if (channels == 0 || img.width == 0 || img.height == 0) return std::nullopt;
  const size_t stride = static_cast<size_t>(img.width) * static_cast<size_t>(channels);
  std::vector<uint8_t> raw((stride + 1) * img.height);
  uLongf raw_size = static_cast<uLongf>(raw.size());
  if (uncompress(raw.data(), &raw_size, reinterpret_cast<const Bytef*>(idat.data()),
                 static_cast<uLong>(idat.size())) != Z_OK ||
      raw_size != raw.size()) {
    return std::nullopt;
  }
  std::vector<uint8_t> pixels(stride * img.height);
  for (size_t y = 0; y < img.height; ++y) {
    const uint8_t filter = raw[y * (stride + 1)];
    const uint8_t* in = &raw[y * (stride + 1) + 1];
    uint8_t* line = &pixels[y * stride];
    const uint8_t* prev = y > 0 ? &pixels[(y - 1) * stride] : nullptr;
    for (size_t x = 0; x < stride; ++x) {
      const int a = x >= static_cast<size_t>(channels) ? line[x - channels] : 0;
      const int b = prev != nullptr ? prev[x] : 0;
      const int c = prev != nullptr && x >= static_cast<size_t>(channels) ? prev[x - channels] : 0;
      int predictor = 0;
      switch (filter) {
        case 0:
          break;
        case 1:
          predictor = a;
          break;
        case 2:
          predictor = b;
          break;
        case 3:
          predictor = (a + b) / 2;
          break;
        case 4: {
          const int p = a + b - c;
          const int pa = std::abs(p - a);
          const int pb = std::abs(p - b);
          const int pc = std::abs(p - c);
          predictor = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
          break;
        }
        default:
          return std::nullopt;
      }
      line[x] = static_cast<uint8_t>(in[x] + predictor);
    }
  }
  img.rgb.reserve(static_cast<size_t>(img.width) * img.height * 3);
  for (size_t i = 0; i < pixels.size(); i += static_cast<size_t>(channels)) {
    img.rgb.insert(img.rgb.end(), {pixels[i], pixels[i + 1], pixels[i + 2]});
  }
  return img;
}

size_t CountColour(const Image& img, uint8_t r, uint8_t g, uint8_t b) {
  size_t n = 0;
  for (size_t i = 0; i + 2 < img.rgb.size(); i += 3) {
    if (img.rgb[i] == r && img.rgb[i + 1] == g && img.rgb[i + 2] == b) ++n;
  }
  return n;
}

std::string WriteReport(const test::TempDir& dir) {
  const std::string dump = dir.File("incident.dump.gz");
  std::vector<test::PollSpec> polls = test::PileUpPolls(RootState::kCommitted);
  for (test::PollSpec& p : polls) {
    if (p.at == kT0 + Sec(10)) p.surge = 150;
    if (p.at == kT0 + Sec(15)) p.surge = 300;
  }
  RootSpec root;
  root.application_name = "</script><img src=x onerror=alert(1)>";  // must stay text, not markup
  test::WriteIncidentDump(dump, {root}, polls);
  const std::string html = dir.File("report.html");
  std::ostringstream out;
  std::ostringstream err;
  app::CliContext context;
  context.out = &out;
  context.err = &err;
  ReportCommandOptions options;
  options.file = dump;
  options.output = html;
  if (RunReport(options, context) != 0) throw std::runtime_error(err.str());
  return html;
}

class ReportBrowserTest : public ::testing::Test {
 protected:
  void SetUp() override {
    struct stat st {};
    ASSERT_EQ(::stat(kChromium, &st), 0)
        << kChromium << " not found: install the Debian package chromium (tests/deps.sh)";
  }
};

TEST_F(ReportBrowserTest, PageRunsItsScriptWithoutConsoleErrors) {
  test::TempDir dir("lockwatch-browser");
  const std::string html = WriteReport(dir);
  const Browser b = RunChromium(dir, html, "--dump-dom");
  ASSERT_EQ(b.exit_code, 0) << b.log;
  EXPECT_NE(b.out.find("data-rendered=\"ok\""), std::string::npos) << b.out.substr(0, 400);
  EXPECT_NE(b.out.find("<svg id=\"timeline-chart\""), std::string::npos);
  EXPECT_EQ(b.out.find("<img"), std::string::npos);  // the hostile application name stayed text
  EXPECT_EQ(ConsoleLines(b.log), std::vector<std::string>()) << b.log;
}

// The check above must be able to fail: a page whose script throws is caught by both signals.
TEST_F(ReportBrowserTest, DetectsAScriptError) {
  test::TempDir dir("lockwatch-browser");
  const std::string html = WriteReport(dir);
  std::string page = test::ReadBytes(html);
  const std::string good = "var series = ";
  ASSERT_NE(page.find(good), std::string::npos);
  page.replace(page.find(good), good.size(), "var series = notDefinedAnywhere() + ");
  const std::string broken = dir.File("broken.html");
  ASSERT_TRUE(WriteFileAtomically(broken, page).ok());
  const Browser b = RunChromium(dir, broken, "--dump-dom");
  ASSERT_EQ(b.exit_code, 0) << b.log;
  EXPECT_NE(b.out.find("data-rendered=\"no\""), std::string::npos);
  EXPECT_FALSE(ConsoleLines(b.log).empty()) << b.log;
}

TEST_F(ReportBrowserTest, ScreenshotShowsTheChart) {
  test::TempDir dir("lockwatch-browser");
  const std::string html = WriteReport(dir);
  const std::string png = dir.File("report.png");
  const Browser b = RunChromium(dir, html, "--screenshot=" + png);
  ASSERT_EQ(b.exit_code, 0) << b.log;
  const std::optional<Image> img = DecodePng(test::ReadBytes(png));
  ASSERT_TRUE(img.has_value()) << "no readable PNG at " << png << "\n" << b.log;
  EXPECT_EQ(img->width, 1280U);
  // The area of all blocked sessions (#ffd7a8) fills a large part of the 1000x320 chart; the first root's
  // line (#1f77b4) crosses it.
  EXPECT_GT(CountColour(*img, 0xff, 0xd7, 0xa8), 20000U);
  EXPECT_GT(CountColour(*img, 0x1f, 0x77, 0xb4), 200U);
}

}  // namespace
}  // namespace lockwatch::forensics
