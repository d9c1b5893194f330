// The CLI layer's error type: a code and a message; every CliError exits with status 2 (bad input).
export class CliError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'CliError';
    this.code = code;
  }
}
