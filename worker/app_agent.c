/*
 * app_agent.c — the agent app: one persona answers the call and works its
 * tools (receptionists, front desks, outbound agents).  No quota of its
 * own: a call ends when the caller or the persona hangs up, or at the
 * line's per-call maximum.
 */
#include "worker/app.h"
#include "worker/tools.h"

/* The line's per-call maximum, or an allowance if it sets one. */
static void
agent_started(struct call *c)
{
	app_line_limit(c);
}

/* The allowance's end moves with the other hosts' minutes. */
static void
agent_tick(struct call *c, uint64_t now)
{
	app_line_recheck(c, now);
}

static int
agent_tool_call(struct call *c, const struct app_tool *t)
{
	return tools_business(c, t);
}

const struct app app_agent = {
	.name = "agent",
	.started = agent_started,
	.tick = agent_tick,
	.tool_call = agent_tool_call,
};
