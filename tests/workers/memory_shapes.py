"""Real processes with the four memory shapes the leak rule must tell apart (tests/cli/memory.rs).

    python3 memory_shapes.py SHAPE TAG

  flat        64 MiB held, nothing else.
  sawtooth    96 MiB allocated and freed every 0.8 s (a buffer taken and given back).
  generating  a "request" every ~1.5 s: 2 MiB more per step for 12 steps with the CPU busy
              (a KV cache growing through a generation), all freed after it.
  leak        a "request" every second: 32 MiB of work freed after it, 16 MiB kept (the
              measured stepwise leak: 16 MB per request at one request a second).

Every allocation is touched, so it is resident. The test sets MALLOC_MMAP_THRESHOLD_ so that
freed buffers go back to the kernel, as MLX's own allocator does with large buffers. TAG only
marks the command line for --pattern. Prints "ready" once the first allocation is resident.
"""

import sys
import time

MIB = 1 << 20


def spin(secs):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        pass


def main():
    shape = sys.argv[1]
    held = [b"\x01" * (64 * MIB)] if shape == "flat" else []
    print("ready", flush=True)
    while True:
        if shape == "flat":
            time.sleep(0.1)
        elif shape == "sawtooth":
            buf = b"\x01" * (96 * MIB)
            time.sleep(0.4)
            del buf
            time.sleep(0.4)
        elif shape == "generating":
            cache = []
            for _ in range(12):
                cache.append(b"\x01" * (2 * MIB))
                spin(0.08)
            cache.clear()
            time.sleep(0.5)
        elif shape == "leak":
            work = b"\x01" * (32 * MIB)
            held.append(b"\x01" * (16 * MIB))
            time.sleep(0.3)
            del work
            time.sleep(0.7)
        else:
            sys.exit(f"unknown shape {shape!r}")


if __name__ == "__main__":
    main()
