/*
 * config.h — the one way a configuration is built and checked: the keys
 * (conf.c), the personas and the lines, and how they fit together.  Start,
 * SIGHUP and `voxrelay -t` all call config_build(), so none of them
 * accepts what another would refuse.
 */
#ifndef VR_CONFIG_H
#define VR_CONFIG_H

#include <stddef.h>

#include "daemon/campaign.h"
#include "daemon/common/conf.h"
#include "personas/line.h"
#include "personas/persona.h"

/*
 * Load path (NULL: the environment only) into cf, then ps, ls and cs.  Returns
 * 0, or the number of problems, one per line in err ("file: field:
 * problem"), with nothing left allocated.  Warnings (not errors) go to
 * warn, one per line.
 */
int config_build(const char *path, struct conf *cf, struct persona_set *ps,
    struct line_set *ls, struct campaign_set *cs, char *err, size_t errlen,
    char *warn, size_t warnlen);
/* Free what config_build() made. */
void config_free(struct conf *cf, struct persona_set *ps, struct line_set *ls,
    struct campaign_set *cs);

#endif
