/*
 * alloc.c — jemalloc's options for the broker, read by jemalloc itself
 * at its first allocation (its documented `malloc_conf` symbol; environment
 * MALLOC_CONF still overrides it, for an operator who must).
 *
 * Why: memory must go back to the system after a burst. A burst of large
 * packets (hundreds of clients each holding most of a 1 MB packet) left
 * RSS at 115 MB with 3 MB allocated, indefinitely: jemalloc purges unused
 * dirty pages only on its decay schedule, and that schedule runs only when
 * the arena allocates again, which an idle worker does not. A background
 * thread purges on time instead, and a 1 s dirty decay (jemalloc's default
 * is 10 s) returns a burst within seconds while steady traffic, which
 * reuses its pages at once, is not slowed. muzzy pages go straight back
 * (MADV_DONTNEED after the dirty decay, no second stage).
 */
const char *malloc_conf = "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0";
