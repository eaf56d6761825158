/** The `cnikit` command: dispatch to its subcommands, `--help` everywhere. */

import { agentCommand } from "./agent.ts";
import { bpfCommand } from "./bpf.ts";
import { demoCommand, echoServer } from "./demo.ts";
import { installCommand, uninstallCommand } from "./install.ts";
import { graphCommand } from "./graph.ts";
import { networkCommand } from "./network.ts";
import { nodesCommand } from "./nodes.ts";
import { statusCommand } from "./status.ts";
import { versionCommand } from "./version.ts";

/** Top-level usage text. */
export const USAGE = `cnikit: a Container Network Interface (CNI) toolkit

usage: cnikit COMMAND [ARGS]

Runtime commands (cnitool-compatible):
  add NET NETNS        add the container in NETNS to network NET, print the result
  check NET NETNS      check an attachment against the cached result
  del NET NETNS        remove an attachment (idempotent)
  gc NET               delete stale cached attachments, then GC each plugin
  status NET           ask each plugin whether it is ready
  version [TYPE...]    spec versions of cnikit or of plugin types

Set-up:
  install --bin-dir DIR   install the binary and link every plugin type beside it; with
                          --conf-dir the CNI config (--conflist FILE, or --mode M --subnet CIDR)
  uninstall               remove exactly what install wrote
  demo                    show cnikit at work in namespaces of its own, then clean up

Multi-node:
  agent                   lease this node's subnet in etcd and route to the other nodes

Seeing the network:
  status                  this node's attachments and the daemon's state (--json)
  nodes                   the cluster's nodes from etcd (--json)
  graph --svg FILE        a picture of nodes, bridges, pods and the links between nodes
  bpf                     the eBPF datapath: attached programs and pinned maps in words

Every command takes --help.
`;

type Command = (argv: readonly string[]) => Promise<number>;

const COMMANDS: Record<string, Command> = {
  add: (a) => networkCommand("add", a),
  check: (a) => networkCommand("check", a),
  del: (a) => networkCommand("del", a),
  gc: (a) => networkCommand("gc", a),
  // with NET: cnitool's STATUS; without: this node's attachments
  status: (a) => statusCommand(a),
  nodes: (a) => nodesCommand(a),
  graph: (a) => graphCommand(a),
  bpf: (a) => bpfCommand(a),
  version: (a) => versionCommand(a),
  install: (a) => installCommand(a),
  uninstall: (a) => uninstallCommand(a),
  demo: (a) => demoCommand(a),
  agent: (a) => agentCommand(a),
  "__echo-server": (a) => echoServer(a),
};

/** Run the command line; returns the exit code. */
export async function cliMain(argv: readonly string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === "help" || cmd === "--help" || cmd === "-h") {
    process[cmd ? "stdout" : "stderr"].write(USAGE);
    return cmd ? 0 : 2;
  }
  if (cmd === "--version") return versionCommand([]);
  const run = COMMANDS[cmd];
  if (!run) {
    process.stderr.write(`cnikit: unknown command "${cmd}"\n\n${USAGE}`);
    return 2;
  }
  return run(rest);
}
