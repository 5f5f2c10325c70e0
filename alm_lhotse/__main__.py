"""``python -m alm_lhotse``: the same command line as ``lhotse-alm``."""

from alm_lhotse.cli import main

if __name__ == "__main__":
    main(prog_name="python -m alm_lhotse")
