/*
 * tools.h — business tools any app may offer: they record what the caller
 * agreed to (a booking, a payment arrangement) for the business to act on.
 */
#ifndef VR_TOOLS_H
#define VR_TOOLS_H

struct call;
struct app_tool;

/* Answer t if it is one of these tools (relay_tool_result): 1, else 0. */
int tools_business(struct call *c, const struct app_tool *t);

#endif
