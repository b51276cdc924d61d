"""The old command path of the GANSynth data cards, kept because the shipped cards name it.

``python -m course_lib.models.gansynth_card ...`` runs :func:`course_lib.metrics.gansynth_card.main`;
import the card code from :mod:`course_lib.metrics.gansynth_card`.
"""

if __name__ == "__main__":
    from course_lib.metrics.gansynth_card import main

    raise SystemExit(main())
