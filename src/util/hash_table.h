/*
 * hash_table.h - an intrusive chained hash table.
 *
 * Entries embed a struct hash_node and are found by their 64-bit hash (a
 * siphash of the key, so remote hosts cannot aim at one bucket); the caller
 * walks the bucket for that hash and compares its own keys.  Several entries
 * may share one key (sockets sharing a port).  The table grows by doubling
 * when it holds more entries than buckets; it never shrinks.  It owns only
 * its bucket array, never the entries.
 */
#ifndef USOCK_HASH_TABLE_H
#define USOCK_HASH_TABLE_H

#include <stddef.h>
#include <stdint.h>

struct hash_node {
    struct hash_node *next;
    uint64_t hash;
};

struct hash_table {
    struct hash_node **buckets;
    size_t bucket_count; /* a power of two */
    size_t count;
};

/* Sets up an empty table; returns 0 or -ENOMEM. */
int hash_table_init(struct hash_table *table, size_t initial_buckets);
/* Frees the bucket array (not the entries). */
void hash_table_destroy(struct hash_table *table);
/* Adds node under hash; growing may fail silently (the table still works,
 * with longer chains). */
void hash_table_insert(struct hash_table *table, struct hash_node *node, uint64_t hash);
/* Removes node, which must be in the table. */
void hash_table_remove(struct hash_table *table, struct hash_node *node);
/* First node of the bucket holding hash; walk with ->next and compare ->hash
 * before comparing keys. */
struct hash_node *hash_table_bucket(const struct hash_table *table, uint64_t hash);

#define container_of(pointer, type, member) \
    ((type *)(void *)((char *)(pointer) - offsetof(type, member)))

#endif
