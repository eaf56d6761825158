/**
 * A bpffs that only this test (or bench) sees: mounted on a directory inside a mount namespace of
 * its own, a slave of the machine's (so nothing mounted in it shows outside, and netns files made
 * later under /run/netns still reach it), held open by a sleeping process. Agents and plugins
 * enter it with `nsenter --mount=<mountNs>`. Pins die with the namespace when `stop` is called.
 *
 * Make a network namespace with `ip netns add` before calling this, so that /run/netns is already
 * a shared mount that the slave keeps receiving from.
 */

import { run } from "./netns.ts";

export interface PrivateBpffs {
  /** The mount namespace holding the bpffs (`/proc/<pid>/ns/mnt`). */
  mountNs: string;
  /** Where it is mounted (inside that namespace only). */
  dir: string;
  stop(): Promise<void>;
}

/** Mount a bpffs on `dir` in a private mount namespace and wait until it is there. */
export async function privateBpffs(dir: string): Promise<PrivateBpffs> {
  const holder = Bun.spawn(["unshare", "-m", "--propagation", "slave", "sh", "-c", `mount -t bpf bpf '${dir}' && exec sleep 100000`], { stdout: "ignore", stderr: "inherit" });
  const mountNs = `/proc/${holder.pid}/ns/mnt`;
  const stop = async () => {
    holder.kill();
    await holder.exited;
  };
  for (let i = 0; run(["nsenter", `--mount=${mountNs}`, "stat", "-f", "-c", "%T", dir]).stdout.trim() !== "bpf_fs"; i++) {
    if (i > 100 || holder.exitCode !== null) {
      await stop();
      throw new Error(`the private bpffs on ${dir} did not come up`);
    }
    await Bun.sleep(50);
  }
  return { mountNs, dir, stop };
}
