/* placeholder until the CLI lands */
#include "internal.h"
AG_EXPORT int
ag_app_main(int argc, char **argv, ag_app_setup_fn setup)
{
	(void)argc;
	(void)argv;
	(void)setup;
	return 1;
}
AG_EXPORT void
ag_app_stop(struct ag_app *app)
{
	(void)app;
}
