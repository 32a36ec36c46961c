// Package ospkg reads the package database of an OS root filesystem — a
// directory, or a tar stream of one such as the base tarball of
// `prebake export` — and says which of the packages an image declares
// (its osPackages, recipes.AnnotationOSPackages) the root lacks.
//
// Debian roots are read from dpkg's status file (/var/lib/dpkg/status): a
// package counts as installed when its Status is "… ok installed", and a
// package another installed one Provides counts too. RPM roots are
// recognised and refused with ErrUnsupported: their database is not read
// yet. The package reads files only; it installs nothing (see
// apply for installing missing packages with the root's package manager).
package ospkg
