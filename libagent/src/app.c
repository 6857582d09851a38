/* placeholder until the runtime lands */
#include "internal.h"
AG_EXPORT int ag_app_set_id(struct ag_app *app, const char *id) { (void)app; (void)id; return 0; }
AG_EXPORT int ag_app_main(int argc, char **argv, ag_app_setup_fn setup) { (void)argc; (void)argv; (void)setup; return 0; }
