"""The teacher zoo: trained DQN teachers that ship with the project, each with a card.

    teachers/GAME.pt     the weights, in our checkpoint format (half precision where that
                         leaves every greedy action on held-out frames unchanged)
    teachers/GAME.json   the card: how it was trained, and its score beside the random
                         policy's under one stated protocol

`--teacher zoo:GAME` names one wherever a teacher is taken; `launch.py zoo` lists them.
"""
