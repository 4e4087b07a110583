/*
 * nanp.h — phone numbers an outbound call may go to: E.164 syntax, and
 * which +1 numbers are in the United States or Canada.  The North American
 * Numbering Plan spans more than those two: twenty-odd Caribbean and
 * Pacific members share +1 and bill as international, and some codes are
 * pay-per-call.  The facts are one table in nanp.c.
 */
#ifndef VR_NANP_H
#define VR_NANP_H

/* "+" and 8 to 15 digits, the first not 0. */
int  e164_valid(const char *s);
/* s is a +1 number with a US or Canadian area code, not pay-per-call.
 * 1, or 0 with why set to a short reason. */
int  nanp_us_canada(const char *s, const char **why);

#endif
