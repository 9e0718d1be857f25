
/*
 * The memory of ngx_http_c1_history.c outside nginx: malloc() within a
 * budget, so that tests can fill a "zone" and see threads evicted.
 */


#include <stdlib.h>

#include "c1_mem.h"


void *
c1_history_mem_alloc(void *pool, size_t size)
{
    size_t      *p;
    c1_mem_t    *m = pool;

    if (m->used + size > m->limit) {
        return NULL;
    }

    p = malloc(sizeof(size_t) + size);
    if (p == NULL) {
        return NULL;
    }

    p[0] = size;
    m->used += size;

    return p + 1;
}


void
c1_history_mem_free(void *pool, void *ptr)
{
    size_t      *p;
    c1_mem_t    *m = pool;

    p = (size_t *) ptr - 1;
    m->used -= p[0];

    free(p);
}


c1_holder_t  c1_mem_dead;


int
c1_history_holder_alive(const c1_holder_t *holder)
{
    return !(holder->pid == c1_mem_dead.pid
             && holder->start == c1_mem_dead.start);
}
