// Package apply switches a live root filesystem to a node image by digest,
// the way bootc and sysexts switch image-based hosts: it verifies the image
// (signature and revocation), keeps a copy of its platform image under
// /var/lib/prebake/store so that a rollback or an interrupted apply needs no
// network, and moves the root from the files of the applied record
// (/var/lib/prebake/applied.json) to the files of the new image.
//
// Only what changed moves: a file whose content, type, mode, owner and link
// target are those already recorded is not touched, so upgrading one
// component (a Kubernetes patch release) rewrites that component's files
// and removes the ones it no longer ships, and leaves the others alone.
// Every file is written next to its path and renamed over it. Files of the
// root the image replaces or whiteouts remove are backed up first
// (/var/lib/prebake/objects) and restored when no image claims the path any
// more.
//
// Before touching the root, Apply writes a journal (the old and the new
// record); a crash leaves it behind and the next Apply, Rollback or Recover
// completes the interrupted transition first. Every step is idempotent, so
// completing a transition that had already partly happened is safe.
//
// After the files, Apply runs the steps the image implies on a running
// system (systemctl daemon-reload, sysctls, kernel modules, importing
// pre-pulled container images into containerd), each skipped with a line
// saying why when the root is not / or the tool is absent, and checks the
// image's osPackages against the root's package database (ospkg),
// installing the missing ones with apt-get when asked.
package apply
