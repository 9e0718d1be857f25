
/*
 * A memory budget standing in for nginx's shared memory zone in tests.
 */


#ifndef _C1_MEM_H_INCLUDED_
#define _C1_MEM_H_INCLUDED_


#include <stddef.h>

#include "ngx_http_c1_history.h"


typedef struct {
    size_t  used;
    size_t  limit;
} c1_mem_t;


/* the holder that c1_history_holder_alive() takes for dead */
extern c1_holder_t  c1_mem_dead;


#endif /* _C1_MEM_H_INCLUDED_ */
