/*
 * fuzz_frames.c - libFuzzer target: raw Ethernet frames into one stack
 * that is already in an interesting state.
 *
 * The first input byte picks the state (fuzz_world.h: a listener, an
 * established connection with data in flight both ways, fragments waiting
 * for reassembly, datagram sockets of every kind with multicast
 * memberships) and its variants; the rest is a list of records: frames as
 * they are, frames of the setup replayed with changes, floods, clock
 * steps, and the program's own socket calls.  Checksums are not verified,
 * so altered frames reach the code behind them.  Besides the sanitizers,
 * every frame the stack sends must be well formed, and after the input
 * the stack's timers run out and everything is freed (LeakSanitizer).
 */
#include <stdlib.h>

#include "fuzz_world.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    struct fuzz_input input = {.data = data, .size = size, .offset = 1};
    struct frames_world world;
    if (frames_world_setup(&world, data[0]) != 0)
        abort(); /* the same every time: the harness or the stack broke */
    frames_world_run(&world, &input);
    frames_world_finish(&world);
    return 0;
}
