# The two commands of README.md, plus the benchmark.
.PHONY: demo test bench setup install package

demo:     ## install what is missing, build, start a throwaway Postgres, load sample data, show the headline queries
	bash scripts/demo.sh

test:     ## every test: Rust unit tests, #[pg_test]s, pg_regress SQL tests, integration tests
	bash scripts/test.sh

setup:    ## only install the toolchain and Debian packages (idempotent)
	bash scripts/setup.sh

install:  ## build and install the extension into the system PostgreSQL 15
	bash scripts/install_extension.sh

package:  ## a Debian package for PostgreSQL 15: target/package/postgresql-15-analytics-ext_<version>_<arch>.deb
	bash scripts/package.sh

bench:    ## benchmarks (release build): figures with ratios against baselines measured in the same run
	bash scripts/bench.sh
