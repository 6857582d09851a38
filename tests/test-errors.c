/* Error codes: every project code has a name and a message; errno values map through. */
#include <errno.h>

#include <agent/agent.h>

#include "tap.h"

int
main(void)
{
#define CHECK(name, code, msg) \
	ok_str_eq(ag_err_name(code), "AG_" #name, "name of AG_" #name); \
	ok_str_eq(ag_strerror(code), msg, "message of AG_" #name); \
	ok((code) <= -5000 && (code) > -6000, "AG_" #name " is in the project block");
	AG_ERRNO_MAP(CHECK)
#undef CHECK
	ok_str_eq(ag_err_name(-ENOMEM), "ENOMEM", "errno names");
	ok_str_eq(ag_strerror(-ENOENT), strerror(ENOENT), "errno messages come from strerror");
	ok_str_eq(ag_strerror(0), "success", "zero is success");
	ok_str_eq(ag_err_name(-4999), "UNKNOWN", "unknown codes have a name");
	ok(ag_strerror(-5999) != NULL, "unknown project codes have a message");
	return tap_done();
}
