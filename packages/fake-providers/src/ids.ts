/** Ids shaped like each provider's (`msg_…`, `toolu_…`, `call_…`), unique within one fake server. */
export interface IdSource {
  next(prefix: string): string;
}

export function createIdSource(): IdSource {
  let counter = 0;
  return {
    next(prefix) {
      counter += 1;
      return `${prefix}_fake${String(counter).padStart(6, "0")}`;
    },
  };
}
