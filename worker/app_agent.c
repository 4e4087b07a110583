/*
 * app_agent.c — the agent app: one persona answers the call and works its
 * tools (receptionists, front desks, outbound agents).  No quota of its
 * own: a call ends when the caller or the persona hangs up, or at the
 * line's per-call maximum.
 */
#include "worker/app.h"
#include "worker/tools.h"

static int
agent_tool_call(struct call *c, const struct app_tool *t)
{
	return tools_business(c, t);
}

const struct app app_agent = {
	.name = "agent",
	.tool_call = agent_tool_call,
};
