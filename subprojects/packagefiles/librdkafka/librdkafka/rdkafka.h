/*
 * <librdkafka/rdkafka.h> for a librdkafka built from source by meson's CMake module: its
 * CMake build exports src/ as the include dir (for "rdkafka.h"), while installed copies and
 * faustc use the librdkafka/ prefix. Added by faustc's wrap (patch_directory).
 */
#include "../src/rdkafka.h"
