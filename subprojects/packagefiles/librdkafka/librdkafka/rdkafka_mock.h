/* <librdkafka/rdkafka_mock.h>, as rdkafka.h next to it. Added by faustc's wrap. */
#include "../src/rdkafka_mock.h"
