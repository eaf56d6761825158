/** The error for bytes that are not a well-formed netlink message. */

/** Netlink bytes that cannot be decoded (truncated header, bad length, missing field). */
export class MalformedMessageError extends Error {
  constructor(message: string) {
    super(`netlink: malformed message: ${message}`);
    this.name = "MalformedMessageError";
  }
}
