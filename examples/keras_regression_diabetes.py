"""Lab 9.1: the lecture's Keras regression model, on scikit-learn's diabetes data.

442 patients, 10 features (age, sex, body mass index, blood pressure, six blood serum measurements); the
target is a measure of disease progression one year later (25 to 346). The model is the lecture's code,
line for line, with engine in place of keras:

    model = Sequential()
    model.add(Dense(15, activation='relu', input_shape=(n_cols,)))
    model.add(Dense(5, activation='relu'))
    model.add(Dense(1, activation='linear'))
    model.compile(optimizer='adam', loss='mse', metrics=['mse'])
    history = model.fit(X, y, validation_split=0.25, epochs=100)

Preparation: 20% of the patients are held out as the test set; the features are standardized with the
training set's mean and standard deviation. The target is standardized too (y - mean) / std, so Adam's
default step (1e-3) moves the output at a useful pace; the test MSE is reported in both units
(MSE in original units = MSE in standardized units * std^2).

What to expect: this data set is noisy. Linear regression explains about half of the variance, so a test
MSE near 0.5-0.7 of var(y) is a good result; predicting the mean for everyone scores about 1.0 var(y).

Needs scikit-learn (pip install -e ".[examples]").    python examples/keras_regression_diabetes.py
"""
import numpy as np

import engine
from engine.layers import Dense
from engine.models import Sequential


def load(test_size=0.2, seed=0):
    """(X_train, X_test, y_train, y_test) standardized with training statistics, and y's (mean, std)."""
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import train_test_split

    X, y = load_diabetes(return_X_y=True)                        # (442, 10), (442,)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=test_size, random_state=seed)
    mean, std = X_train.mean(axis=0), X_train.std(axis=0)
    X_train, X_test = (X_train - mean) / std, (X_test - mean) / std
    y_mean, y_std = y_train.mean(), y_train.std()
    y_train, y_test = (y_train - y_mean) / y_std, (y_test - y_mean) / y_std
    return (X_train.astype(np.float32), X_test.astype(np.float32), y_train.astype(np.float32),
            y_test.astype(np.float32), (float(y_mean), float(y_std)))


def build_model(n_cols):
    model = Sequential()
    model.add(Dense(15, activation="relu", input_shape=(n_cols,)))
    model.add(Dense(5, activation="relu"))
    model.add(Dense(1, activation="linear"))
    model.compile(optimizer="adam", loss="mse", metrics=["mse"])
    return model


def linear_regression_mse(X_train, X_test, y_train, y_test):
    """Test MSE of ordinary least squares (scikit-learn's LinearRegression), the yardstick for this data."""
    from sklearn.linear_model import LinearRegression

    fitted = LinearRegression().fit(X_train, y_train)
    return float(np.mean((fitted.predict(X_test) - y_test) ** 2))


def print_curve(history, every, width=30):
    """One line every `every` epochs: the losses and a bar as long as the training loss."""
    loss, val_loss = history["loss"], history["val_loss"]
    top = max(loss)
    print(f"{'epoch':>5} {'loss':>8} {'val_loss':>9}")
    for epoch in list(range(0, len(loss), every)) + ([len(loss) - 1] if (len(loss) - 1) % every else []):
        bar = "#" * max(1, round(width * loss[epoch] / top))
        print(f"{epoch + 1:>5} {loss[epoch]:>8.4f} {val_loss[epoch]:>9.4f}  {bar}")


def main(epochs=100, seed=0, every=10):
    engine.set_seed(seed)
    X_train, X_test, y_train, y_test, (y_mean, y_std) = load(seed=seed)
    n_cols = X_train.shape[1]
    print(f"diabetes: {len(X_train)} training and {len(X_test)} test patients, {n_cols} features; "
          f"target mean {y_mean:.1f}, std {y_std:.1f} (training set)")
    model = build_model(n_cols)
    model.summary()
    history = model.fit(X_train, y_train, validation_split=0.25, epochs=epochs, batch_size=32, verbose=0)
    print("\nloss curve (standardized units; the last 25% of the training patients validate):")
    print_curve(history.history, every)

    test_loss, test_mse = model.evaluate(X_test, y_test, verbose=0)
    var_y = float(np.var(y_test))                                # standardized units
    baseline = float(np.mean(y_test ** 2))                       # predict the training mean (0) for everyone
    linear_mse = linear_regression_mse(X_train, X_test, y_train, y_test)
    print(f"\ntest MSE = {test_mse:.4f} (standardized) = {test_mse * y_std ** 2:.0f} (original units)")
    print(f"var(y_test) = {var_y:.4f} = {var_y * y_std ** 2:.0f};  predicting the mean: MSE = {baseline:.4f};  "
          f"R^2 = 1 - MSE / var = {1 - test_mse / var_y:.3f}")
    print(f"for comparison, least-squares linear regression on the same split: test MSE = {linear_mse:.4f}")
    return {"history": history.history, "test_loss": test_loss, "test_mse": test_mse, "var_y_test": var_y,
            "baseline_mse": baseline, "linear_regression_mse": linear_mse, "test_mse_original": test_mse * y_std ** 2,
            "var_y_test_original": var_y * y_std ** 2}


if __name__ == "__main__":
    main()
