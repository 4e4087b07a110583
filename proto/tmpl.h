/*
 * tmpl.h — {{name}} variables in a line's instructions and greeting.  A
 * name is [A-Za-z0-9_]{1,32}; anything else between braces is text.
 */
#ifndef VR_TMPL_H
#define VR_TMPL_H

#include <stddef.h>

/* Call fn(arg, name, len) for each variable s uses, in order (repeats
 * included).  fn returns nonzero to stop; that value is returned. */
int  tmpl_each(const char *s, int (*fn)(void *arg, const char *name,
    size_t len), void *arg);

/* s with each variable lookup(arg, name, len) knows replaced by its value;
 * the others are left as written.  A new string, or NULL (no memory). */
char *tmpl_fill(const char *s, const char *(*lookup)(void *arg,
    const char *name, size_t len), void *arg);

#endif
