"""The old command path of Lesson 03's WaveNet training, kept because the shipped cards' rebuild commands name it.

``python -m course_lib.models.wavenet_train ...`` runs :func:`course_lib.train.wavenet.main`; import the
training code from :mod:`course_lib.train.wavenet` and the notes from :mod:`course_lib.data.note_data`.
"""

if __name__ == "__main__":
    from course_lib.train.wavenet import main

    raise SystemExit(main())
