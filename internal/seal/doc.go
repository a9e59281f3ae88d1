// Package seal wraps a tar stream in the two outer layers of a bk archive,
// zstd compression and age encryption, and peels them off again on restore,
// whatever made the stream: bk-pack, `tar | zstd`, or `tar | zstd | age`.
//
// Both layers are the standard formats, so `age -d | zstd -d | tar -x`
// restores an archive without bk. Encryption is done by filippo.io/age; this
// package only chooses keys and reads key files.
package seal
