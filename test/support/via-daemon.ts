/**
 * Preloaded by scripts/test.sh for the second run of the integration suite
 * (`bun test --preload ./test/support/via-daemon.ts`, CNIKIT_TEST_VIA=daemon): starts `cnikit
 * agent` in this test file's private network namespace, serving CNI on $CNIKIT_SOCKET (a path per
 * file that test.sh exports, so every shim the tests run inherits it), and stops it by PID when
 * the file is done. `cnikit install` links every plugin type to cnikit-shim, so the tests' plugin
 * calls go through shim and daemon; calls made from another network or mount namespace (a test's
 * other "host", podman's private /run) are declined by the daemon and run standalone (the podman
 * test starts a daemon of its own in podman's mount namespace for that).
 */

import { afterAll } from "bun:test";
import { startDaemon, type TestDaemon } from "./daemon.ts";
import { assertPrivateNetns } from "./netns.ts";

if (process.env.CNIKIT_TEST_VIA === "daemon") {
  assertPrivateNetns();
  const socket = process.env.CNIKIT_SOCKET;
  if (!socket || socket.startsWith("/run/cnikit")) throw new Error("via-daemon: CNIKIT_SOCKET must name a test socket (scripts/test.sh exports one per file)");
  const daemon: TestDaemon = await startDaemon(socket);
  process.on("exit", () => {
    if (daemon.proc.exitCode === null) daemon.proc.kill("SIGKILL");
  });
  afterAll(() => daemon.stop());
}
