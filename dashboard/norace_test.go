//go:build !race

package dashboard_test

const raceDetector = false
