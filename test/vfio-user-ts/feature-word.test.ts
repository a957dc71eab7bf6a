// Feature words are 64-bit (bigint): every bit, including virtio-net's USO bits above 52, is exact.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { commonFeatures, FeatureBit, featureMask, featureNames, featuresWithin, featureWordBytes, featureWordHex, hasFeature } from 'vfio-user-ts';

test('bits above 52 are set, tested and named exactly', () => {
  const word = featureMask(FeatureBit.version1, FeatureBit.netGuestUso4, FeatureBit.netGuestUso6, FeatureBit.netHostUso);
  assert.is(word, (1n << 32n) | (1n << 54n) | (1n << 55n) | (1n << 56n));
  for (const bit of [32, 54, 55, 56]) assert.ok(hasFeature(word, bit), `bit ${bit}`);
  for (const bit of [0, 31, 33, 53, 57, 63]) assert.not.ok(hasFeature(word, bit), `bit ${bit}`);
  assert.equal(featureNames(word), ['VERSION_1', 'GUEST_USO4', 'GUEST_USO6', 'HOST_USO']);
  assert.ok(hasFeature(featureMask(63), 63));
});

test('common bits and subsets work on the whole word', () => {
  const offered = featureMask(FeatureBit.netCsum, FeatureBit.version1, FeatureBit.netHostUso);
  assert.is(commonFeatures(offered, featureMask(FeatureBit.netHostUso, FeatureBit.netGuestUso4)), featureMask(FeatureBit.netHostUso));
  assert.ok(featuresWithin(featureMask(FeatureBit.netHostUso), offered));
  assert.not.ok(featuresWithin(featureMask(FeatureBit.netGuestUso4), offered));
  assert.not.ok(featuresWithin(featureMask(63), offered));
});

test('a feature word as a u64 on the wire, and in log lines', () => {
  assert.equal([...featureWordBytes(featureMask(0, 56, 63))], [1, 0, 0, 0, 0, 0, 0, 0x81]);
  assert.is(featureWordHex(featureMask(56, 32)), '0x100000100000000');
});

test('a bit number outside 0..63 is a programming error', () => {
  assert.throws(() => featureMask(64), /not in 0\.\.63/);
  assert.throws(() => featureMask(-1), /not in 0\.\.63/);
  assert.throws(() => featureMask(1.5), /not in 0\.\.63/);
});

test.run();
