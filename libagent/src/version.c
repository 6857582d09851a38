/*
 * The library's version at run time: `faustc --version` and anything else that reports
 * what is running print this, so it is the library's, not the headers' an app saw.
 */
#include "internal.h"

AG_EXPORT const char *
ag_version(void)
{
	return AG_VERSION_STRING;
}
