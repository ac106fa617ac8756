//go:build !unix

package ansible

import "os"

// reserveStdout points os.Stdout at the null device and returns the original for the result.
func reserveStdout() (*os.File, error) {
	result := os.Stdout
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return result, err
	}
	os.Stdout = null
	return result, nil
}
