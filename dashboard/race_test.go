//go:build race

package dashboard_test

// raceDetector: the race detector keeps shadow memory for every byte an
// argon2id hash touches, several times its 64 MiB, so peak RSS says more
// about the detector than about keygate.
const raceDetector = true
