/** Trust in a device: `"none"` (no device), pinned on first use, verified by SMP, or the
 * device shows another key than the pinned one (`"changed"`: the user must decide). */
export type Trust = "none" | "tofu" | "verified" | "changed";

/** SMP progress; on `"askSecret"` answer with `Engine.smpRespond`. */
export type SmpState = "askSecret" | "inProgress" | "succeeded" | "failed" | "aborted";

/** A change of a contact's (or our own) device list. */
export type DeviceChange = "added" | "removed" | "fingerprintChanged" | "listEmptied";

/** The fields every event has (empty string / 0 / `null` where they do not apply). */
interface EventBase {
  /** The contact (bare JID) or domain it concerns, or `""`. */
  peer: string;
  /** The device (instance tag), or 0. */
  device: number;
  /** The message, fingerprint, question or explanation (per kind). */
  text: string;
  /** Trust in `device`. */
  trust: Trust;
  /** Whether `device` is on its owner's current device list. */
  listed: boolean;
  /** `secure` only: the session came from the non-interactive DAKE (prekey server). */
  nonInteractive: boolean;
  /** `smp` only. */
  smp: SmpState | null;
  /** `devices` only. */
  deviceChange: DeviceChange | null;
  /** `message` only: for a copy of a message one of our own devices sent, its recipient. */
  sentTo: string | null;
}

/** A decrypted message: `peer` sent `text` from `device`. */
export interface MessageEvent extends EventBase { kind: "message"; }
/** An encrypted session with `peer`'s `device` is up; `text` its fingerprint. */
export interface SecureEvent extends EventBase { kind: "secure"; }
/** The session with `peer`'s `device` ended. */
export interface FinishedEvent extends EventBase { kind: "finished"; }
/** Trust in `peer`'s `device` changed (`"changed"`: accept the key or verify by SMP). */
export interface TrustEvent extends EventBase { kind: "trust"; }
/** SMP progress with `peer`'s `device`; `text` the question on `"askSecret"`. */
export interface SmpEvent extends EventBase { kind: "smp"; smp: SmpState; }
/** `peer`'s device list changed; `device` the tag, `text` its fingerprint. */
export interface DevicesEvent extends EventBase { kind: "devices"; deviceChange: DeviceChange; }
/** A message was not sent to `peer` (`device` if one); `text` why. */
export interface NotSentEvent extends EventBase { kind: "notSent"; }
/** A message from `peer` could not be decrypted; `text` why. */
export interface UndecryptableEvent extends EventBase { kind: "undecryptable"; }
/** An error to show (`text`). */
export interface ErrorEvent extends EventBase { kind: "error"; }
/** A notice (`text`): prekeys published, device listed, prekey server pinned, … */
export interface InfoEvent extends EventBase { kind: "info"; }
/** Catch-up is done and we are available. */
export interface OnlineEvent extends EventBase { kind: "online"; }
/** Session level only (never from an `Engine`). */
export interface SendEvent extends EventBase { kind: "send"; }
/** The state changed: save it (`save`/`saveWithKey`) before sending this call's stanzas. */
export interface SaveStateEvent extends EventBase { kind: "saveState"; }
/** The prekey server of domain `peer` rotated its key, signed by the pinned one (`text`). */
export interface PrekeyServerKeyRotatedEvent extends EventBase { kind: "prekeyServerKeyRotated"; }
/** The prekey server of domain `peer` shows an unsigned new key (`text`): confirm it with
 * `acceptPrekeyServerKey` after comparing; no offline message goes there until then. */
export interface PrekeyServerKeyChangedEvent extends EventBase { kind: "prekeyServerKeyChanged"; }
/** Session level only: an OTRv3 session is up. */
export interface SecureV3Event extends EventBase { kind: "secureV3"; }

/** What `Engine.drainEvents` returns: narrow on `kind`. */
export type Otr4Event =
  | MessageEvent | SecureEvent | FinishedEvent | TrustEvent | SmpEvent | DevicesEvent
  | NotSentEvent | UndecryptableEvent | ErrorEvent | InfoEvent | OnlineEvent | SendEvent
  | SaveStateEvent | PrekeyServerKeyRotatedEvent | PrekeyServerKeyChangedEvent
  | SecureV3Event;

/** The kinds of `Otr4Error` (the C status names, as the Python exception classes). */
export type Otr4ErrorCode =
  | "InvalidArgument" | "WrongKey" | "Tampered" | "Truncated" | "NotABlob" | "BadStanza"
  | "RngFailure" | "Refused" | "Internal";

/** What every failing method throws: `e instanceof Error && e.name === "Otr4Error"`. */
export interface Otr4Error extends Error {
  name: "Otr4Error";
  code: Otr4ErrorCode;
  /** The C ABI's `otr4_status` number. */
  status: number;
}
