import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LIBURING_BUILD_VERSION, LIBURING_VERSION, liburingKey } from '../../images/liburing.js';

test('the liburing cache key names the source version and the recipe', () => {
  assert.is(liburingKey('2.15-1', 1), 'liburing_2.15-1+b1');
  // An epoch's colon is not a file name character everywhere.
  assert.is(liburingKey('1:2.15-1', 2), 'liburing_1_2.15-1+b2');
  assert.ok(liburingKey(LIBURING_VERSION, LIBURING_BUILD_VERSION).includes(LIBURING_VERSION));
});

test.run();
