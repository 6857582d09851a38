/* faustc's umbrella header: everything an app needs. */
#ifndef AGENT_AGENT_H
#define AGENT_AGENT_H

#include <agent/version.h>
#include <agent/types.h>
#include <agent/error.h>
#include <agent/app.h>
#include <agent/stream.h>
#include <agent/table.h>
#include <agent/record.h>
#include <agent/json.h>

#endif
