/** Stream ids inside a channel. */
export const Stream = { stdin: 0, stdout: 1, stderr: 2 } as const;
