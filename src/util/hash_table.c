/*
 * hash_table.c - intrusive chained hash table; see hash_table.h.
 */
#include "util/hash_table.h"

#include <errno.h>
#include <stdlib.h>

int hash_table_init(struct hash_table *table, size_t initial_buckets)
{
    size_t count = 16;
    while (count < initial_buckets)
        count *= 2;
    table->buckets = calloc(count, sizeof(*table->buckets));
    if (!table->buckets)
        return -ENOMEM;
    table->bucket_count = count;
    table->count = 0;
    return 0;
}

void hash_table_destroy(struct hash_table *table)
{
    free(table->buckets);
    table->buckets = NULL;
    table->bucket_count = 0;
    table->count = 0;
}

static void hash_table_grow(struct hash_table *table)
{
    size_t new_count = table->bucket_count * 2;
    struct hash_node **new_buckets = calloc(new_count, sizeof(*new_buckets));
    if (!new_buckets)
        return;
    for (size_t i = 0; i < table->bucket_count; i++) {
        struct hash_node *node = table->buckets[i];
        while (node) {
            struct hash_node *next = node->next;
            size_t index = node->hash & (new_count - 1);
            node->next = new_buckets[index];
            new_buckets[index] = node;
            node = next;
        }
    }
    free(table->buckets);
    table->buckets = new_buckets;
    table->bucket_count = new_count;
}

void hash_table_insert(struct hash_table *table, struct hash_node *node, uint64_t hash)
{
    if (table->count >= table->bucket_count)
        hash_table_grow(table);
    size_t index = hash & (table->bucket_count - 1);
    node->hash = hash;
    node->next = table->buckets[index];
    table->buckets[index] = node;
    table->count++;
}

void hash_table_remove(struct hash_table *table, struct hash_node *node)
{
    struct hash_node **link = &table->buckets[node->hash & (table->bucket_count - 1)];
    while (*link) {
        if (*link == node) {
            *link = node->next;
            node->next = NULL;
            table->count--;
            return;
        }
        link = &(*link)->next;
    }
}

struct hash_node *hash_table_bucket(const struct hash_table *table, uint64_t hash)
{
    return table->buckets[hash & (table->bucket_count - 1)];
}
