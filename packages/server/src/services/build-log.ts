/**
 * The log of one image build or pull: kept in memory while it runs (its newest `maxBytes`), told to
 * followers as it grows, and written to the store from time to time and at the end.
 */
export class BuildLog {
  private text = "";
  private ended = false;
  private readonly followers = new Set<(chunk: string | null) => void>();

  constructor(
    private readonly maxBytes: number,
    initial = "",
  ) {
    this.text = initial;
  }

  append(chunk: string): void {
    if (this.ended || chunk === "") return;
    this.text += chunk;
    // Characters approximate bytes here; the bound is about memory, not an exact byte count.
    if (this.text.length > this.maxBytes) {
      this.text = `[earlier output dropped]\n${this.text.slice(this.text.length - this.maxBytes)}`;
    }
    for (const follower of this.followers) follower(chunk);
  }

  line(text: string): void {
    this.append(`${text}\n`);
  }

  get content(): string {
    return this.text;
  }

  get done(): boolean {
    return this.ended;
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    for (const follower of this.followers) follower(null);
    this.followers.clear();
  }

  /** Calls `listener` with each new chunk, then with null at the end; returns the unsubscribe. */
  follow(listener: (chunk: string | null) => void): () => void {
    if (this.ended) {
      listener(null);
      return () => undefined;
    }
    this.followers.add(listener);
    return () => this.followers.delete(listener);
  }
}
