#include <agent/agent.h>
static int setup(struct ag_app *app) { return ag_app_set_id(app, "greeter"); }
#ifdef AG_APP_AS_MODULE
AG_APP_MODULE(setup);
#else
int main(int argc, char **argv) { return ag_app_main(argc, argv, setup); }
#endif
