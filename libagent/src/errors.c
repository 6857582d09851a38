/* Error messages and names, generated from the one list in agent/error.h. */
#include <errno.h>
#include <string.h>

#include "internal.h"

AG_EXPORT const char *
ag_strerror(int err)
{
	switch (err) {
#define AG__ERR_MSG(name, code, msg) \
	case (code): \
		return msg;
		AG_ERRNO_MAP(AG__ERR_MSG)
#undef AG__ERR_MSG
	case 0:
		return "success";
	default:
		break;
	}
	if (err < 0 && err > -4096)
		return strerror(-err);
	return "unknown error";
}

AG_EXPORT const char *
ag_err_name(int err)
{
	switch (err) {
#define AG__ERR_NAME(name, code, msg) \
	case (code): \
		return "AG_" #name;
		AG_ERRNO_MAP(AG__ERR_NAME)
#undef AG__ERR_NAME
	case 0:
		return "OK";
#define AG__ERRNO_NAME(e) \
	case -(e): \
		return #e;
		AG__ERRNO_NAME(ENOMEM)
		AG__ERRNO_NAME(EINVAL)
		AG__ERRNO_NAME(ENOENT)
		AG__ERRNO_NAME(EEXIST)
		AG__ERRNO_NAME(ENOBUFS)
		AG__ERRNO_NAME(ENOSPC)
		AG__ERRNO_NAME(ETIMEDOUT)
		AG__ERRNO_NAME(EIO)
		AG__ERRNO_NAME(EACCES)
		AG__ERRNO_NAME(EAGAIN)
		AG__ERRNO_NAME(ERANGE)
		AG__ERRNO_NAME(EPERM)
#undef AG__ERRNO_NAME
	default:
		return "UNKNOWN";
	}
}
