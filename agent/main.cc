#include "agent/app/cli.h"

int main(int argc, char** argv) { return lockwatch::app::Main(argc, argv); }
