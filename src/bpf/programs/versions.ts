/**
 * The datapath programs' versions: FNV-1a of each program's bytes with its maps unlinked
 * (`programVersion` in datapath.ts), which name their pins (`prog_pod_<version>`). Written out so
 * that a plugin's ADD finds the pinned program without assembling it first (assembling and
 * hashing cost ~2 ms of a cold start). test/unit/bpf/programs.test.ts fails when a program no
 * longer matches its version here: put the new one in then.
 */
export const PROGRAM_VERSIONS = { pod: "858a4357", vxlan: "b0c72dcf", underlay: "dbdf4e92" } as const;
