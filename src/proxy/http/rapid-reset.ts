// The HTTP/2 rapid-reset defence (CVE-2023-44487): per session, count streams the client reset before they got
// a response, over a sliding one-second window and against the streams that completed; past either bound the
// session gets GOAWAY(ENHANCE_YOUR_CALM) and is destroyed, which stops that client and no other.

export class ResetGuard {
  private second = -1;
  private inSecond = 0;
  private lastSecond = 0;
  private resets = 0;
  private completed = 0;

  constructor(
    /** Client resets per second tolerated (sliding estimate). */
    private readonly maxPerSecond = 100,
    /** Total resets after which they may not outnumber completed streams. */
    private readonly minForRatio = 100,
  ) {}

  completedStream(): void {
    this.completed++;
  }

  /** Counts a client reset; true when the session must be closed. */
  peerReset(now: number = performance.now()): boolean {
    this.resets++;
    const s = Math.floor(now / 1000);
    if (s !== this.second) {
      this.lastSecond = s === this.second + 1 ? this.inSecond : 0;
      this.inSecond = 0;
      this.second = s;
    }
    this.inSecond++;
    // The previous second counts for the part of it still inside the one-second window.
    const rate = this.inSecond + this.lastSecond * (1 - (now - s * 1000) / 1000);
    return rate > this.maxPerSecond || (this.resets > this.minForRatio && this.resets > this.completed);
  }
}
