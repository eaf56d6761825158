/**
 * CNI spec errors: the codes of the spec (and libcni's extras) and the JSON form a plugin prints
 * on stdout when it fails.
 */

/** Well-known CNI error codes (spec section "Error"). */
export const ErrorCode = {
  /** Incompatible CNI version. */
  IncompatibleVersion: 1,
  /** Unsupported field in network configuration. */
  UnsupportedField: 2,
  /** Container unknown or does not exist. */
  UnknownContainer: 3,
  /** Invalid necessary environment variables. */
  InvalidEnvironment: 4,
  /** I/O failure. */
  IOFailure: 5,
  /** Failed to decode content. */
  DecodingFailure: 6,
  /** Invalid network config. */
  InvalidNetworkConfig: 7,
  /** Invalid network namespace (libcni extension). */
  InvalidNetNS: 8,
  /** Try again later. */
  TryAgainLater: 11,
  /** STATUS: plugin not available. */
  PluginNotAvailable: 50,
  /** STATUS: plugin not available, limited connectivity. */
  LimitedConnectivity: 51,
  /** Internal error (libcni's catch-all). */
  Internal: 999,
} as const;

/** The JSON form of a spec error. */
export interface CniErrorJson {
  cniVersion: string;
  code: number;
  msg: string;
  details?: string;
}

/** An error as the CNI spec defines it: a numeric code, a message and optional details. */
export class CniError extends Error {
  readonly code: number;
  readonly details: string;
  /** The spec version this error is reported in (set when printed). */
  cniVersion: string;

  // the default is CURRENT_VERSION, written out: version.ts imports this file
  constructor(code: number, msg: string, details = "", cniVersion = "1.1.0") {
    super(msg);
    this.name = "CniError";
    this.code = code;
    this.details = details;
    this.cniVersion = cniVersion;
  }

  /** The spec's JSON form, `details` omitted when empty. */
  toJSON(): CniErrorJson {
    const out: CniErrorJson = { cniVersion: this.cniVersion, code: this.code, msg: this.message };
    if (this.details) out.details = this.details;
    return out;
  }

  /** Human-readable form, as libcni prints plugin errors. */
  override toString(): string {
    return this.details ? `${this.message}; ${this.details}` : this.message;
  }
}

/** Whether a value looks like a spec error JSON object. */
export function isCniErrorJson(v: unknown): v is CniErrorJson {
  return (
    typeof v === "object" && v !== null && typeof (v as CniErrorJson).code === "number" &&
    (v as CniErrorJson).code !== 0 && "msg" in v
  );
}

/** Wrap anything thrown into a CniError, keeping an existing one as it is. */
export function toCniError(err: unknown, code: number = ErrorCode.Internal): CniError {
  if (err instanceof CniError) return err;
  if (err instanceof Error) return new CniError(code, err.message);
  return new CniError(code, String(err));
}
