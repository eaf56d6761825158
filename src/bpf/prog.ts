/**
 * eBPF programs: load (`BPF_PROG_LOAD`, with the verifier's log in the error when the kernel
 * refuses), run on a test packet (`BPF_PROG_TEST_RUN`), pin, reopen, and read what the kernel
 * says about a program (name, tag, the maps it uses).
 */

import { toHex } from "../netlink/bytes.ts";
import { SysError } from "../sys/error.ts";
import { Asm, type Link } from "./asm.ts";
import { adopt, Attr, Cmd, fdById, objInfo, readName } from "./attr.ts";
import { BpfObject } from "./object.ts";
import { openPinned } from "./pin.ts";

/** Program types cnikit uses (enum bpf_prog_type). */
export const ProgType = { SOCKET_FILTER: 1, SCHED_CLS: 3, SCHED_ACT: 4 } as const;

/** What to load. */
export interface ProgramSpec {
  /** Default SCHED_CLS (a tc classifier). */
  type?: number;
  /** The program: a builder (assembled with `link`) or encoded instructions. */
  insns: Asm | Uint8Array;
  /** Descriptors of the maps the builder names. */
  link?: Link;
  /** Default "GPL" (the tunnel and redirect helpers are GPL-only). */
  license?: string;
  /** Up to 15 characters of [A-Za-z0-9_.]. */
  name?: string;
}

/** The kernel refused a program: the errno and the verifier's log. */
export class BpfLoadError extends SysError {
  /** The verifier's log (empty when the kernel wrote none). */
  readonly log: string;

  constructor(err: SysError, name: string, log: string) {
    super(err.errno, "BPF_PROG_LOAD", `${name || "(unnamed)"}${log ? `: verifier log:\n${lastLines(log, 40)}` : ""}`);
    this.name = "BpfLoadError";
    this.log = log;
  }
}

function lastLines(text: string, n: number): string {
  const lines = text.trimEnd().split("\n");
  return (lines.length > n ? ["...", ...lines.slice(-n)] : lines).join("\n");
}

const enc = new TextEncoder();
const dec = new TextDecoder();
const LOG_SIZE = 1 << 20;

function progLoad(type: number, insns: Uint8Array, license: string, name: string, log?: Uint8Array): number {
  const a = new Attr()
    .u32(0, type)
    .u32(4, insns.length / 8)
    .ptr(8, insns)
    .ptr(16, enc.encode(`${license}\0`));
  if (log) a.u32(24, 1).u32(28, log.length).ptr(32, log);
  a.name(48, name);
  return a.call(Cmd.PROG_LOAD, name);
}

/** Load a program; a refusal throws `BpfLoadError` carrying the verifier's log. */
export function loadProgram(spec: ProgramSpec): BpfProgram {
  const insns = spec.insns instanceof Asm ? spec.insns.assemble(spec.link) : spec.insns;
  const type = spec.type ?? ProgType.SCHED_CLS;
  const license = spec.license ?? "GPL";
  const name = spec.name ?? "";
  let fd: number;
  try {
    // without a log first: the verifier is faster, and a log buffer too small is itself an error
    fd = progLoad(type, insns, license, name);
  } catch (err) {
    if (!(err instanceof SysError)) throw err;
    const log = new Uint8Array(LOG_SIZE);
    try {
      fd = progLoad(type, insns, license, name, log);
    } catch (again) {
      if (!(again instanceof SysError)) throw again;
      const nul = log.indexOf(0);
      throw new BpfLoadError(again, name, dec.decode(nul < 0 ? log : log.subarray(0, nul)));
    }
  }
  return BpfProgram.fromFd(fd, name);
}

/** What one `BPF_PROG_TEST_RUN` returned. */
export interface TestRunResult {
  /** The program's return value (for tc: TC_ACT_*). */
  retval: number;
  /** The packet after the program (rewrites applied). */
  data: Uint8Array;
  /** Mean run time in nanoseconds. */
  durationNs: number;
}

/** A loaded program (a descriptor): close it when done; a pinned or attached program lives on. */
export class BpfProgram extends BpfObject {
  private constructor(
    fd: number,
    id: number,
    /** The name given at load (15 characters at most). */
    readonly name: string,
    /** The program's tag (hash of its instructions), hex. */
    readonly tag: string,
    /** Ids of the maps it uses. */
    readonly mapIds: readonly number[],
  ) {
    super(fd, id);
  }

  /** Wrap a program descriptor (taking ownership), reading its info from the kernel. */
  static fromFd(fd: number, what = ""): BpfProgram {
    return adopt(fd, () => {
      // struct bpf_prog_info: type, id, tag[8], ..., nr_map_ids @52, map_ids @56, name[16] @64
      let info = new Attr(232);
      objInfo(fd, info, what);
      const nMaps = info.getU32(52);
      const ids = new Uint32Array(nMaps);
      if (nMaps > 0) {
        info = new Attr(232).u32(52, nMaps).ptr(56, new Uint8Array(ids.buffer));
        objInfo(fd, info, what);
      }
      return new BpfProgram(fd, info.getU32(4), readName(info.buf, 64), toHex(info.buf.subarray(8, 16)), [...ids]);
    });
  }

  /** Open the program pinned at `path`. */
  static fromPin(path: string): BpfProgram {
    return BpfProgram.fromFd(openPinned(path), path);
  }

  /** Open the program with kernel id `id`. */
  static fromId(id: number): BpfProgram {
    return BpfProgram.fromFd(fdById(Cmd.PROG_GET_FD_BY_ID, id, "program"), `program id ${id}`);
  }

  /**
   * Run the program once (or `repeat` times) on `packet` with BPF_PROG_TEST_RUN; for a tc
   * program the packet is a whole Ethernet frame. The kernel runs it on its own copy: redirects
   * and tunnel keys set there go nowhere.
   */
  testRun(packet: Uint8Array, opts: { repeat?: number } = {}): TestRunResult {
    const out = new Uint8Array(packet.length + 256);
    const a = new Attr()
      .u32(0, this.fd)
      .u32(8, packet.length)
      .u32(12, out.length)
      .ptr(16, packet)
      .ptr(24, out)
      .u32(32, opts.repeat ?? 1);
    a.call(Cmd.PROG_TEST_RUN, this.name);
    return { retval: a.getU32(4), data: out.slice(0, a.getU32(12)), durationNs: a.getU32(36) };
  }
}
