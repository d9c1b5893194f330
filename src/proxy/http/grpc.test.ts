// Unit tests of the gRPC wire helpers: timeouts, status mapping, message encoding and the frame checker.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeGrpcMessage, formatGrpcTimeout, GrpcFrameChecker, GrpcStatus, grpcStatusForHttp, isGrpcContentType, parseGrpcTimeout } from './grpc.ts';
import { backoffMs, retriableFailure, retriableResponse } from './retry.ts';
import { ResetGuard } from './rapid-reset.ts';

function frame(len: number, flag = 0): Buffer {
  const b = Buffer.alloc(5 + len);
  b[0] = flag;
  b.writeUInt32BE(len, 1);
  return b;
}

describe('gRPC helpers', () => {
  it('parses and formats grpc-timeout', () => {
    assert.equal(parseGrpcTimeout('100m'), 100);
    assert.equal(parseGrpcTimeout('2S'), 2000);
    assert.equal(parseGrpcTimeout('1H'), 3_600_000);
    assert.equal(parseGrpcTimeout('5000u'), 5);
    assert.equal(parseGrpcTimeout('123456789m'), undefined, 'at most 8 digits');
    assert.equal(parseGrpcTimeout('10x'), undefined);
    assert.equal(parseGrpcTimeout('m'), undefined);
    assert.equal(formatGrpcTimeout(249.2), '250m');
    assert.equal(formatGrpcTimeout(0.1), '1m');
    assert.equal(formatGrpcTimeout(200_000_000), '200000S');
  });

  it('recognises gRPC content types but not grpc-web', () => {
    assert.ok(isGrpcContentType('application/grpc'));
    assert.ok(isGrpcContentType('application/grpc+proto'));
    assert.ok(!isGrpcContentType('application/grpc-web'));
    assert.ok(!isGrpcContentType('application/json'));
  });

  it('maps local reply statuses as Envoy does', () => {
    assert.equal(grpcStatusForHttp(403), GrpcStatus.PERMISSION_DENIED);
    assert.equal(grpcStatusForHttp(401), GrpcStatus.UNAUTHENTICATED);
    assert.equal(grpcStatusForHttp(429), GrpcStatus.UNAVAILABLE);
    assert.equal(grpcStatusForHttp(503), GrpcStatus.UNAVAILABLE);
    assert.equal(grpcStatusForHttp(404), GrpcStatus.UNIMPLEMENTED);
  });

  it('percent-encodes grpc-message outside printable ASCII', () => {
    assert.equal(encodeGrpcMessage('denied by X ns/a'), 'denied by X ns/a');
    assert.equal(encodeGrpcMessage('100% é'), '100%25 %C3%A9');
  });

  it('follows message prefixes split across chunks and refuses oversized, malformed and truncated messages', () => {
    const c = new GrpcFrameChecker(10, false);
    const two = Buffer.concat([frame(3), frame(10)]);
    for (let i = 0; i < two.length; i++) assert.equal(c.push(two.subarray(i, i + 1)), 0);
    assert.equal(c.finish(), 0);
    assert.equal(new GrpcFrameChecker(10, false).push(frame(11)), GrpcStatus.RESOURCE_EXHAUSTED);
    assert.equal(new GrpcFrameChecker(10, false).push(frame(1, 1)), GrpcStatus.INTERNAL, 'compressed without grpc-encoding');
    assert.equal(new GrpcFrameChecker(10, true).push(frame(1, 1)), 0);
    assert.equal(new GrpcFrameChecker(10, true).push(frame(1, 7)), GrpcStatus.INTERNAL);
    const t = new GrpcFrameChecker(10, false);
    t.push(frame(5).subarray(0, 7));
    assert.equal(t.finish(), GrpcStatus.INTERNAL);
  });
});

describe('retry rules', () => {
  const p = { attempts: 2, retryOn: ['connect-failure', 'refused-stream', 'unavailable', 'retriable-status-codes'], retriableStatusCodes: [409] };
  it('retries what retry_on names, and never an overflow', () => {
    assert.ok(retriableFailure(p, 'connect-failure'));
    assert.ok(retriableFailure(p, 'refused-stream'));
    assert.ok(!retriableFailure(p, 'reset'));
    assert.ok(!retriableFailure({ attempts: 1, retryOn: ['5xx'] }, 'overflow'));
    assert.ok(retriableFailure({ attempts: 1, retryOn: ['5xx'] }, 'timeout'));
    assert.ok(retriableResponse(p, 200, 14));
    assert.ok(!retriableResponse(p, 200, 13));
    assert.ok(retriableResponse(p, 409, undefined));
    assert.ok(!retriableResponse(p, 503, undefined));
    assert.ok(retriableResponse({ attempts: 1, retryOn: ['gateway-error'] }, 503, undefined));
    assert.ok(!retriableResponse({ attempts: 1, retryOn: ['gateway-error'] }, 500, undefined));
  });
  it('backs off with full jitter, 25 ms base, capped at 250 ms', () => {
    assert.equal(backoffMs(1, 0.999), 24);
    assert.equal(backoffMs(2, 0.999), 74);
    assert.equal(backoffMs(10, 0.999), 249);
    assert.equal(backoffMs(3, 0), 0);
  });
});

describe('ResetGuard', () => {
  it('calls a session past 100 client resets per second, and not a client whose streams complete', () => {
    const g = new ResetGuard();
    let t = 10_000;
    let tripped = false;
    for (let i = 0; i < 101 && !tripped; i++) tripped = g.peerReset((t += 1));
    assert.ok(tripped);
    const ok = new ResetGuard();
    let calm = false;
    for (let i = 0; i < 500; i++) {
      ok.completedStream();
      ok.completedStream();
      calm ||= ok.peerReset((t += 50));
    }
    assert.ok(!calm, '20 resets per second among completed streams is normal');
  });
  it('calls a session whose resets outnumber its completed streams past the minimum', () => {
    const g = new ResetGuard(1000, 100);
    let t = 0;
    let tripped = false;
    for (let i = 0; i < 101; i++) tripped = g.peerReset((t += 100));
    assert.ok(tripped);
  });
});
