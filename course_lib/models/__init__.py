"""The course's neural models, one module each (import the module you need):

=================  ==============================================================
``wavenet``        mu-law WaveNet with fast generation, NSynth WaveNet autoencoder (Lesson 03)
``gansynth``       progressive GANSynth generator / discriminator (Lesson 04)
``gansynth_repr``  phase / IF / mel-IF note representations and their inverses (Lesson 04)
``layers``         equalised dense / conv layers, pixel norm, minibatch stddev (GANSynth and StyleGAN2)
``stylegan2``      StyleGAN2 for log-mel loop images (Lesson 05, HW2)
``melgan``         MelGAN vocoder and the Griffin-Lim baseline (Lesson 05, HW2)
``istft_vocoder``  Vocos-style frame-rate vocoder (mel -> STFT magnitude/phase -> iSTFT), HW2's default
``vocoder_eval``   Griffin-Lim / MelGAN / iSTFT side by side on the same mels (Lesson 05; its card: metrics.vocoder_card)
``classifiers``    loop and pitch classifiers behind IS / FAD / PA / PE (metrics)
``ddsp``           DDSP: decoder + harmonic-plus-noise synthesiser, ``resynthesize`` (timbre transfer, Lesson 07)
``ddsp_features``  f0 (pYIN) and A-weighted loudness per frame (Lesson 07)
``spectral_ae``    log-magnitude convolutional autoencoder + Griffin-Lim, the baseline (Lesson 07)
``pqmf``           RAVE's pseudo-QMF filter bank, analysis and synthesis (Lesson 07)
``rave_lite``      a RAVE-style PQMF + convolutional VAE at a CPU budget, first stage only (Lesson 07)
=================  ==============================================================

Trainers live one layer up (``course_lib.train``: ``gansynth``, ``wavenet``, ``gan``, ``vocoder``, ``ddsp``), checkpoints and
devices one layer down (``course_lib.runtime``).
"""
