/*
 * sys_publish.h — worker 0 publishing the $SYS/broker/... topics through the
 * ordinary publish path (sys_publish.c; their content is sys.c's).
 */
#ifndef STARLING_CORE_SYS_PUBLISH_H
#define STARLING_CORE_SYS_PUBLISH_H

struct worker;
struct sys_state;

struct sys_state *sys_state_new(void);
void sys_state_free(struct sys_state *s);
/* Publish the $SYS topics when their interval has passed. */
void sys_tick(struct worker *w);

#endif
