/*
 * nanp.c — see nanp.h.  A +1 number is +1 NPA NXX XXXX: the area code
 * (NPA) and the exchange (NXX) each start with 2-9.  An area code is
 * taken when it follows the plan's shape, is not kept back by it (N11
 * service codes, N9X and 37X/96X for expansion), and is not in the table
 * below of codes that are not the United States or Canada or that cost
 * the callee money to be called from.
 */
#include "proto/nanp.h"

#include <ctype.h>
#include <stddef.h>
#include <string.h>

int
e164_valid(const char *s)
{
	size_t n;

	if (s == NULL || s[0] != '+' || s[1] < '1' || s[1] > '9')
		return 0;
	for (n = 1; s[n] != '\0'; n++)
		if (!isdigit((unsigned char)s[n]))
			return 0;
	return n - 1 >= 8 && n - 1 <= 15;
}

/* Area codes of +1 that are not to be dialled from the allow-all rule. */
static const struct nanp_code {
	unsigned short	 npa;
	const char	*why;
} nanp_excluded[] = {
	/* Caribbean members: billed as international */
	{ 242, "Bahamas" },
	{ 246, "Barbados" },
	{ 264, "Anguilla" },
	{ 268, "Antigua and Barbuda" },
	{ 284, "British Virgin Islands" },
	{ 345, "Cayman Islands" },
	{ 441, "Bermuda" },
	{ 473, "Grenada" },
	{ 649, "Turks and Caicos Islands" },
	{ 658, "Jamaica" },
	{ 664, "Montserrat" },
	{ 721, "Sint Maarten" },
	{ 758, "Saint Lucia" },
	{ 767, "Dominica" },
	{ 784, "Saint Vincent and the Grenadines" },
	{ 809, "Dominican Republic" },
	{ 829, "Dominican Republic" },
	{ 849, "Dominican Republic" },
	{ 868, "Trinidad and Tobago" },
	{ 869, "Saint Kitts and Nevis" },
	{ 876, "Jamaica" },
	/* US territories: in the plan, not in the fifty states */
	{ 340, "US Virgin Islands" },
	{ 670, "Northern Mariana Islands" },
	{ 671, "Guam" },
	{ 684, "American Samoa" },
	{ 787, "Puerto Rico" },
	{ 939, "Puerto Rico" },
	/* not a place */
	{ 900, "pay-per-call" },
	{ 976, "pay-per-call" },
	{ 500, "personal communications" },
	{ 533, "personal communications" },
	{ 544, "personal communications" },
	{ 566, "personal communications" },
	{ 577, "personal communications" },
	{ 588, "personal communications" },
	{ 600, "Canadian non-geographic services" },
	{ 622, "Canadian non-geographic services" },
	{ 700, "carrier services" },
	{ 710, "US government" },
};

/* Exchanges that are pay-per-call whatever the area code. */
#define NXX_PAY_PER_CALL	976

int
nanp_us_canada(const char *s, const char **why)
{
	unsigned npa, nxx;
	const char *dummy;

	if (why == NULL)
		why = &dummy;
	*why = "not a +1 number";
	if (!e164_valid(s) || s[1] != '1' || strlen(s) != 12)
		return 0;
	npa = (unsigned)(s[2] - '0') * 100 + (unsigned)(s[3] - '0') * 10 +
	    (unsigned)(s[4] - '0');
	nxx = (unsigned)(s[5] - '0') * 100 + (unsigned)(s[6] - '0') * 10 +
	    (unsigned)(s[7] - '0');
	*why = "not a valid area code";
	if (npa < 200 || nxx < 200)
		return 0;
	if (npa % 100 == 11 || (npa / 10) % 10 == 9 || npa / 10 == 37 ||
	    npa / 10 == 96)
		return 0;
	for (size_t i = 0; i < sizeof(nanp_excluded) / sizeof(nanp_excluded[0]);
	    i++)
		if (nanp_excluded[i].npa == npa) {
			*why = nanp_excluded[i].why;
			return 0;
		}
	if (nxx == NXX_PAY_PER_CALL) {
		*why = "pay-per-call";
		return 0;
	}
	*why = NULL;
	return 1;
}
