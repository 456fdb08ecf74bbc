/**
 * How the host drives the agent around a checkpoint: signals sent to the sandbox's init (which
 * passes them on, guest-init.c), and "quiesced", the file the agent leaves in its host-visible
 * socket directory once it has let go of its host socket. Shared by the agent's bundle and the
 * driver, so no other imports.
 */
export const QUIESCED_FILE = "quiesced";
/** The agent lets go of its host socket and connections (before a checkpoint). */
export const QUIESCE_SIGNAL = "SIGUSR1";
/** The agent listens again (after a restore, or after a checkpoint that failed). */
export const RELISTEN_SIGNAL = "SIGUSR2";
