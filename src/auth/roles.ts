/**
 * Who may call what. `admin` manages everything; `webhook` is the smart-home system posting
 * device events; `telephony` is the TAS reporting calls.
 */
export const roles = ['admin', 'webhook', 'telephony'] as const;
export type Role = (typeof roles)[number];

/** The caller a request was authenticated as. */
export interface Principal {
  role: Role;
  /** The stored key's id; null for the ADMIN_API_KEY from the environment. */
  keyId: number | null;
  name: string;
}
