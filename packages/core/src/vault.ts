/**
 * The Vault port: provider credentials are sealed before they reach the store and opened only
 * in memory on their way out (to the gateway or, briefly, into a sandbox).
 */
export interface SecretOwner {
  ownerId: string;
  provider: string;
}

export interface Vault {
  /** Encrypts under the current master key; the result is bound to its owner and provider. */
  seal(plaintext: string, owner: SecretOwner): string;
  /** Decrypts, or throws `credential_unreadable` if the record was tampered with or moved. */
  open(sealed: string, owner: SecretOwner): string;
  /** The same secret with its data key re-wrapped under the current master key. */
  rewrap(sealed: string, owner: SecretOwner): string;
  keyIdOf(sealed: string): string;
  currentKeyId(): string;
}
